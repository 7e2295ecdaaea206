"""Model references and classification: resolving a reference, its files and its labels."""
