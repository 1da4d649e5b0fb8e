"""Runs, split by use case: ``create`` (run, thread-and-run), ``queries`` (get, list, modify, steps),
``cancel``, ``submit_tool_outputs``, and ``transitions`` (the state changes the executor makes).

Every function here is a plain function of a ``UnitOfWork`` (one transaction, committed by the
caller). Functions that change a run's state return the events to publish *after* that commit.
"""
