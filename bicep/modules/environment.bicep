// The place every agent app of a hive runs in: a Log Analytics workspace for the
// containers' logs and a Container Apps environment (workload-profiles plan, Consumption
// profile: up to 4 vCPU / 8 GiB per app, billed per use).

@description('Name of the hive: prefixes the resource names.')
param hiveName string

@description('Azure region of the resources.')
param location string

@description('Tags of every resource (at least amplihack-hive: <hive name>).')
param tags object

@description('Days Log Analytics keeps the agents\' logs.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' = {
  name: '${hiveName}-logs'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
    features: {
      enableLogAccessUsingOnlyResourcePermissions: true
    }
  }
}

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: '${hiveName}-env'
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: workspace.properties.customerId
        // Read at deployment time and handed to the environment only; never an output.
        sharedKey: workspace.listKeys().primarySharedKey
      }
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
    zoneRedundant: false
  }
}

@description('Resource ID of the Container Apps environment.')
output environmentId string = environment.id

@description('DNS suffix of the environment: app X is reachable inside it at https://X.internal.<defaultDomain>.')
output defaultDomain string = environment.properties.defaultDomain
