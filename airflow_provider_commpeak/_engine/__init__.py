"""
The send engine (private). Where things go:

- A request field: ``_input/message.py`` (the one ``Message`` shape), its check in
  ``_input/validation.py``, and the sandbox. A response field: ``report.MessageResult`` and where
  ``pipeline.judge_entry`` reads it; the ledger and report files follow the result's field names.
- A retry rule: which answers may be retried in ``classify.py`` (pure, no I/O), how long to wait in
  ``retry.py``, pacing in ``rate.py`` (clock-free); HTTP itself only in ``transport.py``.
- An input format: ``_input/records.py`` (``FILE_FORMATS``: a reader and a writer per format).
- An argument and its bounds: ``arguments.py``. Delivery statuses: ``status.py`` reads an answer,
  ``tracking.py`` remembers and judges a wait (the sensor and the trigger share both).
"""
