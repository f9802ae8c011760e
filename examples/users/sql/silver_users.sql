-- One row per user: the nested API record flattened into typed columns.
SELECT
  "login.uuid" AS id,
  "login.username" AS username,
  "name.first" AS first_name,
  "name.last" AS last_name,
  gender,
  email,
  CAST("dob.date" AS DATE) AS birth_date,
  "dob.age" AS age,
  "location.city" AS city,
  "location.country" AS country,
  phone,
  nat AS nationality
FROM users
