-- Census member keys name a host (an agent's 16-byte id) by the first 8 bytes of its
-- SHA-256: a host ('a'), a user's host ('u', before the user's hash), a version's host
-- ('v', after the version). Keys of other kinds stay. Two keys that come out the same
-- count together.
CREATE TABLE census_members_rekeyed AS
    SELECT CASE
               WHEN length(member) < 9 THEN member
               WHEN get_byte(member, 8) = 97 AND length(member) = 9 + 16 THEN
                   substring(member FOR 9) || substring(sha256(substring(member FROM 10)) FOR 8)
               WHEN get_byte(member, 8) = 117 AND length(member) = 9 + 16 + 8 THEN
                   substring(member FOR 9)
                   || substring(sha256(substring(member FROM 10 FOR 16)) FOR 8)
                   || substring(member FROM 26)
               WHEN get_byte(member, 8) = 118 AND length(member) > 9 + 16 THEN
                   substring(member FOR length(member) - 16)
                   || substring(sha256(substring(member FROM length(member) - 15)) FOR 8)
               ELSE member
           END AS member,
           sum(n)::bigint AS n
    FROM census_members
    GROUP BY 1;
DROP TABLE census_members;
ALTER TABLE census_members_rekeyed RENAME TO census_members;
ALTER TABLE census_members ALTER COLUMN n SET NOT NULL;
ALTER TABLE census_members ADD PRIMARY KEY (member);
