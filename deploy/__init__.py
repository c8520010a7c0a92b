"""Deploy tooling: function bundles, the load balancer's route table, smoke tests.

    python -m deploy.bundle [--out dist]   one zip per function, reproducible
    python -m deploy.routes [--check]      the URL map's routes, from shared.http.routes
    python -m deploy.tfoutputs ...         Terraform outputs as environment variables
    python -m deploy.grants                table privileges for the functions' DB users
    python -m deploy.smoke --url ...       health and auth checks through the load balancer

Nothing here is imported by the deployed functions; it runs on a workstation
or in Cloud Build.
"""
