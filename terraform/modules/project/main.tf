# The APIs the gateway needs, enabled once per project, and the project number
# (service agents are named after it). Every other module of the gateway
# depends on this one (module "gateway" says depends_on = [module.project]),
# so nothing is created before the API it needs is on.

resource "google_project_service" "this" {
  for_each = toset(var.services)

  project = var.project_id
  service = each.value
  # Turning an API off on destroy would break anything else in the project using it.
  disable_on_destroy         = false
  disable_dependent_services = false
}

# An API reports enabled before every Google front end accepts calls to it:
# the first calls after enablement may still be refused for a minute or so.
# terraform_data is built into Terraform (no extra provider to download and
# lock); the wait runs again only when the list of APIs changes.
resource "terraform_data" "services_settled" {
  triggers_replace = sort(var.services)

  provisioner "local-exec" {
    command = "sleep ${var.settle_seconds}"
  }

  depends_on = [google_project_service.this]
}

data "google_project" "this" {
  project_id = var.project_id
}
