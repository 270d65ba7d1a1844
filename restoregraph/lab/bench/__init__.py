"""Benchmarks that write measured figures into docs/BENCHMARKS.md.

``restoregraph bench tools`` (:mod:`.tools`), ``bench agent`` (:mod:`.agent`) and
``bench perception`` (:mod:`.perception`) each replace their own section of the document
(:mod:`.report`); the data is the held-out test sets under ``../shared/data/test``
(``--data``), never used for training or tuning.
"""
