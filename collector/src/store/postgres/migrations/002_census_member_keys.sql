-- Census member keys lose their organisation·group prefix (17 bytes): the row's hash
-- that follows names both. Two rows whose hashes would meet count together.
CREATE TABLE census_members_rekeyed AS
    SELECT substring(member FROM 18) AS member, sum(n)::bigint AS n
    FROM census_members
    GROUP BY 1;
DROP TABLE census_members;
ALTER TABLE census_members_rekeyed RENAME TO census_members;
ALTER TABLE census_members ALTER COLUMN n SET NOT NULL;
ALTER TABLE census_members ADD PRIMARY KEY (member);
