"""Stages: the seeds' pipe ISMs, which end one record flow and start another.

A scheme's ``stages:`` list holds named stage instances, each of one ``type``
(``stages/registry.py``):

* ``filter`` (``filter.py``) keeps the records of a source or a procedure for which a
  boolean expression (``expr/``) holds. It runs where its input runs, in the pipeline
  (on the gatherer, or in ``netdistill run``), before anything is committed.
* ``aggregate`` (``aggregate.py``), ``merge`` (``merge.py``), ``alert`` (``alerts.py``)
  and ``rollup`` (``rollup.py``) run on the manager, over records once they are
  committed (``runner.py``): each reads what was committed since its watermark and
  writes its output, its state and the new watermark in one store transaction, so a
  crash at any point neither loses nor doubles what it produced.
"""
