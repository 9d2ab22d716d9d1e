<?php
$MESS['ISOBOX_CONNECTOR_MODULE_NAME'] = 'isobox connector';
$MESS['ISOBOX_CONNECTOR_MODULE_DESCRIPTION'] = 'Runs REST apps and events of an isolated portal through isobox: token checks, token issue and the event queue without the cloud.';
$MESS['ISOBOX_CONNECTOR_PARTNER_NAME'] = 'isobox';
$MESS['ISOBOX_CONNECTOR_INSTALL_NEED_REST'] = 'The "rest" module must be installed first.';
$MESS['ISOBOX_CONNECTOR_INSTALL_DB_ERROR'] = 'Could not create the module table:';
$MESS['ISOBOX_CONNECTOR_INSTALL_DB_TYPE'] = 'The module needs a MySQL or MariaDB database.';
