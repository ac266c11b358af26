-- RFC 7946's right-hand rule for geofences stored before input was normalised: each
-- polygon's exterior ring counterclockwise and its holes clockwise, in the stored GeoJSON
-- that exports answer with. (The WKB beside it feeds the index, where winding does not
-- matter.) A ring's winding is the sign of its shoelace sum over lon/lat.

CREATE FUNCTION pg_temp.ring_wound(ring jsonb, ccw boolean) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN ((
        SELECT sum((ring -> i ->> 0)::float8 * (ring -> (i + 1) ->> 1)::float8
                   - (ring -> (i + 1) ->> 0)::float8 * (ring -> i ->> 1)::float8)
        FROM generate_series(0, jsonb_array_length(ring) - 2) AS i
    ) > 0) = ccw THEN ring
    ELSE (SELECT jsonb_agg(ring -> i ORDER BY i DESC)
          FROM generate_series(0, jsonb_array_length(ring) - 1) AS i)
    END
$$;

CREATE FUNCTION pg_temp.polygon_wound(rings jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_agg(pg_temp.ring_wound(r.ring, r.n = 1) ORDER BY r.n)
    FROM jsonb_array_elements(rings) WITH ORDINALITY AS r (ring, n)
$$;

UPDATE geofences SET geometry = jsonb_set(geometry, '{coordinates}', CASE geometry ->> 'type'
    WHEN 'Polygon' THEN pg_temp.polygon_wound(geometry -> 'coordinates')
    ELSE (SELECT jsonb_agg(pg_temp.polygon_wound(p.rings) ORDER BY p.n)
          FROM jsonb_array_elements(geometry -> 'coordinates') WITH ORDINALITY AS p (rings, n))
    END)
WHERE kind = 'polygon';
