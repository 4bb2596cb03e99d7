from workbench.core.cli import entry

entry()
