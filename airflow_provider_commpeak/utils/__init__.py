"""Helpers shared by the hook, the operator and the notifier: no HTTP, no Airflow context."""
