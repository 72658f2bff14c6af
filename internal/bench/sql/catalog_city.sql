-- Moves the city with the most orders to another city's region. Returns the city and its
-- orders.
WITH c AS (
    SELECT city_id, count(*) AS orders FROM orders GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1
), moved AS (
    UPDATE cities SET region = (SELECT min(x.region) FROM cities x WHERE x.region <> cities.region)
    FROM c WHERE cities.id = c.city_id
    RETURNING cities.id
)
SELECT c.city_id, c.orders FROM c JOIN moved ON moved.id = c.city_id
