"""Pipeline search: run every restoration pipeline as a prefix tree and keep the scores.

* :mod:`.tree` -- enumerate pipelines (every order x every model) and run them as a prefix tree,
  each distinct prefix computed once; rank scores.
* :mod:`.toolbox` -- the *search toolbox*: the few models per task the tree enumerates.
* :mod:`.mixtures` -- the random degradation mixtures of the search data.
* :mod:`.features` -- the image features the embedded planner reads (perception CNN).
* :mod:`.build` -- ``restoregraph data build``: the search data set (format: docs/search_data.md).
* :mod:`.dataset` -- reading the search data back (samples, held-out split, node features).
* :mod:`.report` -- the ``search`` and ``embedded-planner`` sections of docs/BENCHMARKS.md.
* :mod:`.export` -- instruction data from the search data (``restoregraph data export``).
* :mod:`.adapt` -- extend the data and the embedded planner for a new tool (``restoregraph adapt``).
"""
