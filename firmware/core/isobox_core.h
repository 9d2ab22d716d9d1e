// Umbrella header of the portable core, for the Arduino sketch (the core
// is an Arduino library: see library.properties and arduino/README).
#ifndef ISOBOX_FW_CORE_H
#define ISOBOX_FW_CORE_H

#include "config.h"
#include "device.h"
#include "link.h"
#include "message.h"
#include "pin.h"
#include "ports.h"
#include "relays.h"
#include "settings.h"
#include "url.h"

#endif  // ISOBOX_FW_CORE_H
