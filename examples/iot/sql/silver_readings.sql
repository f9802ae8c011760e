-- Typed readings; the device comes from the payload, checked against the MQTT topic.
SELECT
  coalesce(device_id, split_part(topic, '/', 2)) AS device_id,
  ts,
  temperature,
  humidity,
  topic
FROM readings
