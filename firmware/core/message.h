// Push & Pull message and command decoding. A message is the JSON object
// between the frame markers: {"id":7,"mid":"<26 digits>","channel":...,
// "tag":...,"time":...,"text":{"module_id":...,"command":...,"params":{...}}}.
// `text` is what was published (pull.application.event.add), decoded here
// into one of the few commands a relay understands.
#ifndef ISOBOX_FW_MESSAGE_H
#define ISOBOX_FW_MESSAGE_H

#include <stddef.h>

#include "config.h"
#include "flash.h"

namespace isobox {

constexpr size_t kMidLen = 26;

enum class CommandKind {
  kIgnored,       // well-formed, but not for a relay (other commands, pull/config_expire, ...)
  kRelay,         // switch relay(s): device (may be empty) and on
  kChannelRenew,  // pull/channel_expire with action "reconnect": subscribe to channel
  kHistoryGap,    // isobox/history_gap: commands may have been missed
};

struct Command {
  CommandKind kind = CommandKind::kIgnored;
  // kRelay: the relay name ("" = no name given) and the wanted state.
  char device[ISOBOX_FW_NAME_MAX + 1] = {};
  bool on = false;
  // kChannelRenew: the new signed channel id.
  char channel[ISOBOX_FW_CHANNEL_MAX + 1] = {};
};

enum class ParseError {
  kOk,
  kBadJson,     // not one JSON object within the depth limit
  kBadMid,      // mid present but not 26 digits
  kNoText,      // no object `text`
  kBadCommand,  // text lacks module_id/command strings
  kBadParams,   // a relay command with a missing or unusable device/value
};

struct Message {
  char mid[kMidLen + 1] = {};  // "" when the message carries none
  Command command;
};

// Decodes a published body ({"module_id","command","params"}).
ParseError ParseCommand(const char* json, size_t n, Command* out);

// Decodes a whole message; the command as ParseCommand does with `text`.
ParseError ParseMessage(const char* json, size_t n, Message* out);

// Reports whether s is a signed channel id the push server accepts:
// 32 hex [":" 32 hex] "." hex signature (8..128 lowercase hex digits).
bool IsSignedChannelId(const char* s);

// Reports whether s is exactly 26 decimal digits.
bool IsMid(const char* s);

// "ok", "bad_json", ... (a flash string, for logs and tests).
flash::Str ParseErrorName(ParseError e);

}  // namespace isobox

#endif  // ISOBOX_FW_MESSAGE_H
