"""The ``restoregraph`` command line."""
