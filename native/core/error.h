// Error handling for the native core: exceptions that carry the file and line where a check failed.
// Native code never calls exit() or abort(); bindings/ turns vg::Error into a JS error.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace vg {

class Error : public std::runtime_error {
 public:
  Error(const std::string& msg, const char* file, int line)
      : std::runtime_error(msg + " [" + file + ":" + std::to_string(line) + "]") {}
};

// Thrown for bad arguments (shape, length, value); bindings map it to RangeError.
class ArgumentError : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace vg

// VG_CHECK(cond, parts...): throws vg::Error with the message built from parts when cond is false.
#define VG_CHECK(cond, ...)                                                                   \
  do {                                                                                        \
    if (!(cond)) throw ::vg::Error(::vg::detail::concat(__VA_ARGS__), __FILE__, __LINE__);    \
  } while (0)

// VG_CHECK_ARG(cond, parts...): same, for caller errors (shapes, lengths, option values).
#define VG_CHECK_ARG(cond, ...)                                                                     \
  do {                                                                                              \
    if (!(cond)) throw ::vg::ArgumentError(::vg::detail::concat(__VA_ARGS__), __FILE__, __LINE__);  \
  } while (0)
