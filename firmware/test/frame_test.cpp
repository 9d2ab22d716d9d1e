#include <string>
#include <vector>

#include "../core/frame.h"
#include "check.h"

namespace {

struct Collect : isobox::MessageSink {
  std::vector<std::string> got;
  void OnMessage(const char* json, size_t n) override { got.emplace_back(json, n); }
};

const std::string S = "#!NGINXNMS!#";
const std::string E = "#!NGINXNME!#";

std::string Wrap(const std::string& m) { return S + m + E; }

}  // namespace

TEST(frame_one_message) {
  Collect c;
  isobox::FrameParser p(c);
  std::string f = Wrap("{\"mid\":\"1\"}");
  p.Feed(f.data(), f.size());
  p.EndFrame();
  CHECK_EQ(c.got.size(), 1);
  CHECK(c.got.size() == 1 && c.got[0] == "{\"mid\":\"1\"}");
  CHECK_EQ(p.stats().messages, 1);
}

TEST(frame_several_messages_and_garbage_between) {
  Collect c;
  isobox::FrameParser p(c);
  std::string f = "junk#" + Wrap("{\"a\":1}") + "\n#!NGINX" + Wrap("{\"b\":2}") + "##" + Wrap("") +
                  "#!NGINXNME!#stray end" + Wrap("{\"c\":3}") + "tail";
  p.Feed(f.data(), f.size());
  p.EndFrame();
  CHECK_EQ(c.got.size(), 4);
  if (c.got.size() == 4) {
    CHECK(c.got[0] == "{\"a\":1}");
    CHECK(c.got[1] == "{\"b\":2}");
    CHECK(c.got[2].empty());
    CHECK(c.got[3] == "{\"c\":3}");
  }
  CHECK_EQ(p.stats().truncated, 0);
}

TEST(frame_chunking_does_not_matter) {
  std::string f = Wrap("{\"a\":\"#!NGINX\"}") + Wrap("{\"b\":2}") + "x" + Wrap("{\"c\":3}");
  Collect whole;
  isobox::FrameParser pw(whole);
  pw.Feed(f.data(), f.size());
  pw.EndFrame();
  for (size_t chunk = 1; chunk <= 13; ++chunk) {
    Collect c;
    isobox::FrameParser p(c);
    for (size_t i = 0; i < f.size(); i += chunk) p.Feed(f.data() + i, std::min(chunk, f.size() - i));
    p.EndFrame();
    CHECK(c.got == whole.got);
  }
  CHECK_EQ(whole.got.size(), 3);
}

TEST(frame_message_cut_by_frame_end_is_dropped) {
  Collect c;
  isobox::FrameParser p(c);
  std::string a = S + "{\"a\":";
  std::string b = "1}" + E + Wrap("{\"b\":2}");
  p.Feed(a.data(), a.size());
  p.EndFrame();
  p.Feed(b.data(), b.size());
  p.EndFrame();
  // The tail of the cut message is not glued to anything; the next full one arrives.
  CHECK_EQ(c.got.size(), 1);
  CHECK(c.got.size() == 1 && c.got[0] == "{\"b\":2}");
  CHECK_EQ(p.stats().truncated, 1);
}

TEST(frame_start_marker_split_across_frames_is_not_joined) {
  Collect c;
  isobox::FrameParser p(c);
  std::string a = "#!NGINX", b = "NMS!#{}" + E;
  p.Feed(a.data(), a.size());
  p.EndFrame();
  p.Feed(b.data(), b.size());
  p.EndFrame();
  CHECK_EQ(c.got.size(), 0);
}

TEST(frame_oversized_message_is_skipped_and_parsing_resumes) {
  Collect c;
  isobox::FrameParser p(c);
  std::string exact(ISOBOX_FW_MSG_MAX, 'x');
  std::string over(ISOBOX_FW_MSG_MAX + 1, 'y');
  std::string huge(ISOBOX_FW_MSG_MAX * 10, 'z');
  std::string f = Wrap(over) + Wrap(exact) + Wrap(huge) + Wrap("{}");
  p.Feed(f.data(), f.size());
  p.EndFrame();
  CHECK_EQ(c.got.size(), 2);
  if (c.got.size() == 2) {
    CHECK(c.got[0] == exact);
    CHECK(c.got[1] == "{}");
  }
  CHECK_EQ(p.stats().oversized, 2);
}

TEST(frame_oversized_message_with_end_marker_split_over_chunks) {
  Collect c;
  isobox::FrameParser p(c);
  std::string f = Wrap(std::string(ISOBOX_FW_MSG_MAX + 5, '#')) + Wrap("{}");
  for (char ch : f) p.Feed(&ch, 1);
  p.EndFrame();
  CHECK_EQ(c.got.size(), 1);
  CHECK_EQ(p.stats().oversized, 1);
}
