// What the C ABI shims over libtorch share: every function returns NULL or a malloc'd error
// message (freed by the Rust side with `qamlab_free_error`), so C++ exceptions never cross
// the boundary.

#pragma once

#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>
#include <exception>

inline char* qamlab_error_copy(const char* message) {
  char* out = static_cast<char*>(std::malloc(std::strlen(message) + 1));
  if (out != nullptr) {
    std::strcpy(out, message);
  }
  return out;
}

// Runs `body`, turning any exception into an error message.
template <typename F>
char* qamlab_guarded(F&& body) {
  try {
    body();
    return nullptr;
  } catch (const c10::Error& e) {
    // The message without libtorch's C++ backtrace, which would bury it.
    return qamlab_error_copy(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return qamlab_error_copy(e.what());
  } catch (...) {
    return qamlab_error_copy("unknown C++ exception in a qamlab libtorch shim");
  }
}
