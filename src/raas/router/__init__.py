"""The router: features, models, training and evaluation for choosing a tier per interaction."""
