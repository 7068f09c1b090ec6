-- Census member keys keep a host (an agent's 16-byte id) in 10 bytes: the id's first
-- 6 (its creation time, so that a row's new hosts are written after its older ones)
-- and the first 4 of its SHA-256. Hosts are in members of kind 'a' (the host), 'u'
-- (before the user's hash) and 'v' (after the version). Keys of other kinds stay. Two
-- keys that come out the same count together.
CREATE TABLE census_members_rekeyed AS
    SELECT CASE
               WHEN length(member) < 9 THEN member
               WHEN get_byte(member, 8) = 97 AND length(member) = 9 + 16 THEN
                   substring(member FOR 9 + 6)
                   || substring(sha256(substring(member FROM 10)) FOR 4)
               WHEN get_byte(member, 8) = 117 AND length(member) = 9 + 16 + 8 THEN
                   substring(member FOR 9 + 6)
                   || substring(sha256(substring(member FROM 10 FOR 16)) FOR 4)
                   || substring(member FROM 26)
               WHEN get_byte(member, 8) = 118 AND length(member) > 9 + 16 THEN
                   substring(member FOR length(member) - 16 + 6)
                   || substring(sha256(substring(member FROM length(member) - 15)) FOR 4)
               ELSE member
           END AS member,
           sum(n)::bigint AS n
    FROM census_members
    GROUP BY 1;
DROP TABLE census_members;
ALTER TABLE census_members_rekeyed RENAME TO census_members;
ALTER TABLE census_members ALTER COLUMN n SET NOT NULL;
ALTER TABLE census_members ADD PRIMARY KEY (member);
