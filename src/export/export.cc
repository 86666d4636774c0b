#include "autotailor/export/export.h"

#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "autotailor/export/onnx_writer.h"
#include "autotailor/import/onnx_import.h"

namespace autotailor {

void export_subnet(const supernet::Supernet& s, const supernet::SubnetConfig& c,
                   const std::string& path) {
  export_graph(*s.derive(c), s.graph().name, path);
}

void export_graph(const ir::Graph& derived, const std::string& model_name,
                  const std::string& path) {
  auto g = std::make_shared<ir::Graph>(derived);
  supernet::materialize(*g);
  fold_batchnorm(*g);
  remove_identities(*g);
  g->name = model_name;
  std::string bytes = serialize_onnx(*g);
  try {
    import_onnx_bytes(bytes, path);  // the ONNX checker and shape inference, on what we write
  } catch (const Error& e) {
    throw Error(std::string("export produced an invalid model: ") + e.what());
  }
  write_file_atomic(path, bytes);
}

}  // namespace autotailor
