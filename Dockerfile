FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY dashboard ./dashboard
COPY pages ./pages
COPY data ./data
# Editable, so the package finds /app/data (the measure catalogue, the common-password list).
RUN pip install --no-cache-dir -e .
# Two malloc arenas: large text freed by the database threads goes back for reuse instead of
# staying in per-thread arenas.
ENV OT_HOST=0.0.0.0 OT_PORT=8080 OT_SECURE_COOKIES=1 OT_DATA_DIR=/var/lib/ot-tracker MALLOC_ARENA_MAX=2
VOLUME /var/lib/ot-tracker
EXPOSE 8080
# The data volume holds the SQLite file and the generated secret key.
CMD ["sh", "-c", "mkdir -p $OT_DATA_DIR && cp -n /app/data/*.json $OT_DATA_DIR/ && python -m dashboard migrate && python -m dashboard serve"]
