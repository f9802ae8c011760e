-- Per UTC day and customer: events and net revenue.
SELECT
  CAST(ts AS DATE) AS date,
  customer_id,
  count(*) AS events,
  round(
    coalesce(sum(amount) FILTER (WHERE event_type = 'purchase'), 0)
      - coalesce(sum(amount) FILTER (WHERE event_type = 'refund'), 0),
    2
  ) AS revenue
FROM silver_events
GROUP BY 1, 2
