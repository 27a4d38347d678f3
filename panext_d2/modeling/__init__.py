"""Importing this package registers every backbone, head and meta-architecture."""
