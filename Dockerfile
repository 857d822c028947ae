# Airflow 3.3 image with this provider installed from the repository (for docker-compose.yaml).
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow-agentvault/
COPY --chown=airflow:0 airflow_agentvault /opt/airflow-agentvault/airflow_agentvault
RUN pip install --no-cache-dir "/opt/airflow-agentvault"
