DROP TABLE organizations;
DROP FUNCTION organizations_enforce_one_level();
DROP FUNCTION organization_metadata_is_valid(jsonb);
