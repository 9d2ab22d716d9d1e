// Decodes arbitrary bytes as a published body and as a whole message, and
// checks what a decoded command promises: NUL-terminated fields, a signed
// channel id for a renewal, a 26-digit mid or none.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* s = reinterpret_cast<const char*>(data);
  static isobox::Command cmd;
  static isobox::Message msg;
  isobox::ParseCommand(s, size, &cmd);
  if (memchr(cmd.device, '\0', sizeof cmd.device) == nullptr) abort();
  if (cmd.kind == isobox::CommandKind::kChannelRenew && !isobox::IsSignedChannelId(cmd.channel)) abort();
  isobox::ParseError e = isobox::ParseMessage(s, size, &msg);
  if (msg.mid[0] != '\0' && !isobox::IsMid(msg.mid)) abort();
  if (e == isobox::ParseError::kBadJson && msg.command.kind != isobox::CommandKind::kIgnored) abort();
  return 0;
}
