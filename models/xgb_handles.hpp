#pragma once
/// What the models' .cpp files share around XGBoost's C API: error text and an owning
/// DMatrix handle. Internal to models/ (includes <xgboost/c_api.h>).

#include <xgboost/c_api.h>

#include <string>

namespace tender::xgb {

/// `what` followed by XGBoost's last error message.
inline std::string error(const std::string& what) {
  return what + ": " + XGBGetLastError();
}

/// Frees its DMatrix when it goes out of scope.
struct dmatrix {
  DMatrixHandle h = nullptr;
  dmatrix() = default;
  dmatrix(const dmatrix&) = delete;
  dmatrix& operator=(const dmatrix&) = delete;
  ~dmatrix() {
    if (h)
      XGDMatrixFree(h);
  }
};

} // namespace tender::xgb
