"""Learning: events -> rewards, bandit policies, planning within the brief, MLflow logging, and the
simulated market the sandbox uses. No Dagster, no network besides MLflow."""
