"""The stages a reply is composed of, one file each (their order: pipeline/composer.py)."""
