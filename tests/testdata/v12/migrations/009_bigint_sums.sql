-- Analytics database, version 9: an exact bigint sum for the API's reads.
--
-- sum(bigint) returns numeric through a 128-bit state: a product breakdown or ABC analysis of
-- a large merchant's year sums ~40k stored rows into 5000 keys and then ranks and pages them,
-- all in numeric. agg.isum adds bigints with int8pl (an error on overflow, never a wrap), for
-- money in cents: 2^63 cents are 9.2e16 roubles. NULL when no row, as sum.
CREATE AGGREGATE agg.isum(bigint) (sfunc = int8pl, stype = bigint, combinefunc = int8pl, parallel = safe);
