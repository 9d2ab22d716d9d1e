<?php
$MESS['ISOBOX_CONNECTOR_MODULE_NAME'] = 'Коннектор isobox';
$MESS['ISOBOX_CONNECTOR_MODULE_DESCRIPTION'] = 'Подключает REST-приложения и события изолированного портала к isobox: проверка и выдача токенов и очередь событий без облака.';
$MESS['ISOBOX_CONNECTOR_PARTNER_NAME'] = 'isobox';
$MESS['ISOBOX_CONNECTOR_INSTALL_NEED_REST'] = 'Сначала установите модуль «rest».';
$MESS['ISOBOX_CONNECTOR_INSTALL_DB_ERROR'] = 'Не удалось создать таблицу модуля:';
$MESS['ISOBOX_CONNECTOR_INSTALL_DB_TYPE'] = 'Модулю нужна база данных MySQL или MariaDB.';
