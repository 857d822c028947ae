"""Apache Airflow provider for multi-agent research pipelines on AgentVault and A2A agents."""

__version__ = "0.1.0"
