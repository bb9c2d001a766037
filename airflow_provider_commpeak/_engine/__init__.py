"""The send engine: HTTP, classification, pacing, the pipeline, reports and the ledger (private)."""
