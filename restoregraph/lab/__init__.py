"""restoregraph/lab/__init__.py"""
