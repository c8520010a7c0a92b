# The APIs the gateway needs, enabled once per project, and the project number
# (service agents are named after it).

resource "google_project_service" "this" {
  for_each = toset(var.services)

  project = var.project_id
  service = each.value
  # Turning an API off on destroy would break anything else in the project using it.
  disable_on_destroy         = false
  disable_dependent_services = false
}

data "google_project" "this" {
  project_id = var.project_id
}
