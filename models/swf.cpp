#include "models/swf.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace tender {

namespace {

std::string_view trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos)
    return {};
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool parse_int(std::string_view tok, std::int64_t& v) {
  auto r = std::from_chars(tok.data(), tok.data() + tok.size(), v);
  if (r.ec == std::errc() && r.ptr == tok.data() + tok.size())
    return true;
  // Some archive logs write integral fields as "123.00".
  double d = 0;
  auto rd = std::from_chars(tok.data(), tok.data() + tok.size(), d);
  if (rd.ec != std::errc() || rd.ptr != tok.data() + tok.size())
    return false;
  v = static_cast<std::int64_t>(d);
  return true;
}

bool parse_double(std::string_view tok, double& v) {
  auto r = std::from_chars(tok.data(), tok.data() + tok.size(), v);
  return r.ec == std::errc() && r.ptr == tok.data() + tok.size();
}

void parse_header(std::string_view comment, swf_trace& out) {
  auto body = trim(comment.substr(1));
  auto colon = body.find(':');
  if (colon == std::string_view::npos || colon == 0)
    return;
  auto key = trim(body.substr(0, colon));
  if (key.find(' ') != std::string_view::npos)
    return;
  auto value = std::string(trim(body.substr(colon + 1)));
  std::int64_t v = 0;
  if (key == "MaxProcs" && parse_int(value, v))
    out.max_procs = v;
  else if (key == "UnixStartTime" && parse_int(value, v))
    out.unix_start_time = v;
  else if (key == "TimeZone" && parse_int(value, v))
    out.time_zone = v;
  out.header.emplace(std::string(key), std::move(value)); // first occurrence wins
}

/// Parses one record line; returns an empty string or the reason it is malformed.
std::string parse_record(std::string_view line, swf_job& j, int& columns) {
  std::vector<std::string_view> tok;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
      ++i;
    if (i >= line.size())
      break;
    auto b = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
      ++i;
    tok.push_back(line.substr(b, i - b));
  }
  if (tok.size() != 18 && tok.size() != 21)
    return "expected 18 fields (or 21 in Alea's variant), found " + std::to_string(tok.size());
  columns = static_cast<int>(tok.size());
  std::int64_t* ints[] = {&j.id,       &j.submit, &j.wait,   &j.run,       &j.procs,
                          nullptr,     &j.mem_used, &j.procs_req, &j.time_req, &j.mem_req,
                          &j.status,   &j.user,   &j.group,  &j.exe,       &j.queue,
                          &j.partition, &j.preceding, &j.think};
  for (int f = 0; f < 18; ++f) {
    bool ok = f == 5 ? parse_double(tok[f], j.cpu_avg) : parse_int(tok[f], *ints[f]);
    if (!ok)
      return "field " + std::to_string(f + 1) + " is not a number: '" + std::string(tok[f]) + "'";
  }
  if (j.submit < 0)
    return "field 2 (submit time) is unknown or negative";
  if (tok.size() == 21)
    j.queue_name = std::string(tok[19]);
  return {};
}

} // namespace

bool parse_swf(std::string_view text, const std::string& name, const swf_options& opt,
               swf_trace& out, std::string& error) {
  out.path = name;
  std::size_t pos = 0, lineno = 0;
  bool saw_columns = false;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    auto line = text.substr(pos, nl == std::string_view::npos ? text.size() - pos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++lineno;
    auto t = trim(line);
    if (t.empty())
      continue;
    if (t.front() == ';') {
      parse_header(t, out);
      continue;
    }
    swf_job j;
    int columns = 18;
    auto why = parse_record(t, j, columns);
    if (why.empty() && saw_columns && columns != out.columns)
      why = "has " + std::to_string(columns) + " fields where earlier lines have " +
            std::to_string(out.columns);
    if (!why.empty()) {
      auto msg = name + ":" + std::to_string(lineno) + ": " + why;
      if (opt.on_malformed == swf_malformed::refuse) {
        error = msg;
        return false;
      }
      out.skipped.push_back(std::move(msg));
      continue;
    }
    saw_columns = true;
    out.columns = columns;
    j.line = lineno;
    out.jobs.push_back(std::move(j));
    if (opt.max_jobs > 0 && out.jobs.size() >= opt.max_jobs)
      break;
  }
  std::stable_sort(out.jobs.begin(), out.jobs.end(),
                   [](const swf_job& a, const swf_job& b) { return a.submit < b.submit; });
  return true;
}

bool read_maybe_gzip(const std::string& path, std::string& out, std::string& error) {
  gzFile f = gzopen(path.c_str(), "rb"); // reads plain files transparently
  if (!f) {
    error = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  out.clear();
  char buf[1 << 16];
  for (;;) {
    int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int code = 0;
      const char* msg = gzerror(f, &code);
      error = path + ": cannot read: " + (msg ? msg : "zlib error");
      gzclose(f);
      return false;
    }
    if (n == 0) {
      int code = Z_OK;
      const char* msg = gzerror(f, &code);
      if (code != Z_OK) { // e.g. a truncated gzip stream ends without its trailer
        error = path + ": cannot read: " + (msg ? msg : "zlib error");
        gzclose(f);
        return false;
      }
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  gzclose(f);
  return true;
}

bool read_swf(const std::string& path, const swf_options& opt, swf_trace& out,
              std::string& error) {
  std::string text;
  if (!read_maybe_gzip(path, text, error))
    return false;
  return parse_swf(text, path, opt, out, error);
}

} // namespace tender
