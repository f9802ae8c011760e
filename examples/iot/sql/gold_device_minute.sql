-- Per minute of event time and device: readings and average, min and max temperature.
SELECT
  date_bin(INTERVAL '1 minute', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS window_start,
  device_id,
  count(*) AS readings,
  round(avg(temperature), 2) AS avg_temperature,
  min(temperature) AS min_temperature,
  max(temperature) AS max_temperature,
  round(avg(humidity), 1) AS avg_humidity
FROM silver_readings
GROUP BY 1, 2
