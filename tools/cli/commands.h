// The orchard subcommands, kept apart from argument parsing in main.cc.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "orchard/pipeline.h"

namespace orchard::cli {

// Flags of 'orchard run' that are not PipelineOptions themselves.
struct RunFlags {
  std::string pooling;
  std::string precision = "fp32";
  std::string s3_endpoint;
  bool fail_on_error = false;
  bool quiet = false;
  bool resume = false;
  bool overwrite = false;
};

// The flags of 'orchard run' and 'orchard update' (which has no --resume/--overwrite: it is
// a mode of its own).
void AddRunFlags(CLI::App& run, PipelineOptions& options, RunFlags& flags, bool is_update);
int RunCommand(PipelineOptions& options, const RunFlags& flags);
int ListModelsCommand();
// Lists what a run would process, with counts per label.
int LsCommand(const std::string& location, const std::string& s3_endpoint);
// S3 options from the environment (AWS_*), with --s3-endpoint on top; prints and returns
// false on a bad setting.
bool S3OptionsFor(const std::string& s3_endpoint, S3Options* options);
int InspectCommand(const std::string& output_dir);

}  // namespace orchard::cli
