-- Per minute of event time and product category: events, purchases, net revenue and
-- distinct customers. Streaming: each window is emitted once, when the watermark passes it.
SELECT
  date_bin(INTERVAL '1 minute', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS window_start,
  product_category,
  count(*) AS events,
  count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
  round(
    coalesce(sum(amount) FILTER (WHERE event_type = 'purchase'), 0)
      - coalesce(sum(amount) FILTER (WHERE event_type = 'refund'), 0),
    2
  ) AS revenue,
  count(DISTINCT customer_id) AS customers
FROM silver_events
GROUP BY 1, 2
