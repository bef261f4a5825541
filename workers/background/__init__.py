"""What every worker runs beside its jobs: the reconciler and the webhook sender."""
