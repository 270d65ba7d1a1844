"""restoregraph/lab/training/__init__.py"""
