"""The top floor: the `gcot` command and the Prefect flows and deployments that wire the steps."""
