"""restoregraph/core/__init__.py"""
