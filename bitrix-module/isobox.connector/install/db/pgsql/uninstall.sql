DROP TABLE IF EXISTS b_isobox_connector_spool;
