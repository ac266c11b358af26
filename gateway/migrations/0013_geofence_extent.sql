-- Each geofence's lon/lat bounding box (a circle's includes its radius), so a map can ask
-- for the fences in its view: GET /v1/geofences?bbox=west,south,east,north. New rows get
-- it from geo/store.py (shapely bounds; geo.distance.bbox_around for circles).

ALTER TABLE geofences ADD COLUMN extent box;

-- Rows written before this migration, computed here once. A circle's longitude half-width
-- is padded by 1 % over r / cos(lat), which covers the exact spherical cap up to 10 km.
UPDATE geofences AS g SET extent = CASE
    WHEN g.kind = 'circle' THEN box(
        point((g.geometry #>> '{coordinates,0}')::float8
                  - 1.01 * g.radius_m / (111194.93 * cos(radians((g.geometry #>> '{coordinates,1}')::float8))),
              (g.geometry #>> '{coordinates,1}')::float8 - 1.01 * g.radius_m / 111194.93),
        point((g.geometry #>> '{coordinates,0}')::float8
                  + 1.01 * g.radius_m / (111194.93 * cos(radians((g.geometry #>> '{coordinates,1}')::float8))),
              (g.geometry #>> '{coordinates,1}')::float8 + 1.01 * g.radius_m / 111194.93))
    ELSE (
        SELECT box(point(min((p ->> 0)::float8), min((p ->> 1)::float8)),
                   point(max((p ->> 0)::float8), max((p ->> 1)::float8)))
        FROM jsonb_path_query(g.geometry,
                 CASE g.geometry ->> 'type' WHEN 'MultiPolygon' THEN '$.coordinates[*][*][*]'
                                            ELSE '$.coordinates[*][*]' END::jsonpath) AS p)
END;

ALTER TABLE geofences ALTER COLUMN extent SET NOT NULL;

CREATE INDEX ix__geofences__extent ON geofences USING gist (extent);
