FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    GATEWAY_STORE=sqlite:////data/gateway.db \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY endpoints ./endpoints
COPY bots ./bots
RUN pip install --no-cache-dir . \
 && useradd --system --uid 10001 --home /data gateway \
 && mkdir -p /data && chown gateway /data

USER gateway
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"
CMD ["dify-gateway", "serve"]
