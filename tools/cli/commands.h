// The orchard subcommands, kept apart from argument parsing in main.cc.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "orchard/pipeline.h"

namespace orchard::cli {

// Flags of 'orchard run' that are not PipelineOptions themselves.
struct RunFlags {
  std::string pooling;
  bool fail_on_error = false;
  bool quiet = false;
};

void AddRunFlags(CLI::App& run, PipelineOptions& options, RunFlags& flags);
int RunCommand(PipelineOptions& options, const RunFlags& flags);
int ListModelsCommand();
int InspectCommand(const std::string& output_dir);

}  // namespace orchard::cli
