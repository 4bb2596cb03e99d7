"""Toolkits several methods share: data, nn, lm, weight spaces, robustness recipes, metrics."""
