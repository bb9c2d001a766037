"""Input: records from lists and files, phone numbers, segments, validation and staging (private)."""
